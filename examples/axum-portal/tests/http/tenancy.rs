//! Orgs, members, invitations and roles; another org's ids answer 404.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::app;

#[tokio::test]
async fn orgs_are_listed_read_and_created_and_another_orgs_id_is_404() {
    let app = app().await;
    let ada = app.token("ada").await;
    let mine = app.get(&ada, "/v1/orgs").await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["items"][0]["org"]["slug"], "acme");

    let acme = app.get(&ada, &format!("/v1/orgs/{}", app.acme())).await;
    assert_eq!(acme.status, StatusCode::OK);
    assert_eq!(acme.body["name"], "Acme Corporation");

    let globex = app.get(&ada, &format!("/v1/orgs/{}", app.globex())).await;
    assert_eq!(globex.status, StatusCode::NOT_FOUND);
    assert_eq!(globex.code(), "org.not_found");

    let created = app
        .post(&ada, "/v1/orgs", json!({ "slug": "initech", "name": "Initech" }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let taken = app
        .post(&ada, "/v1/orgs", json!({ "slug": "initech", "name": "Again" }))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.code(), "org.slug_taken");
    let invalid = app
        .post(&ada, "/v1/orgs", json!({ "slug": "Not A Slug", "name": "x" }))
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.code(), "validation.invalid_field");
    assert_eq!(invalid.body["param"], "slug");
}

#[tokio::test]
async fn members_are_listed_and_removed_by_those_allowed() {
    let app = app().await;
    let acme = app.acme();
    let viewer = app.token("linus").await;
    let members = app.get(&viewer, &format!("/v1/orgs/{acme}/members?limit=2")).await;
    assert_eq!(members.status, StatusCode::OK, "{members:?}");
    assert_eq!(members.body["items"].as_array().unwrap().len(), 2);
    let next = members.body["next"].as_str().unwrap();
    let rest = app
        .get(&viewer, &format!("/v1/orgs/{acme}/members?limit=10&cursor={next}"))
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 2);
    let bad_limit = app.get(&viewer, &format!("/v1/orgs/{acme}/members?limit=lots")).await;
    assert_eq!(bad_limit.code(), "validation.invalid_field");
    assert_eq!(bad_limit.body["param"], "limit");

    let ada = app.user_id("ada");
    let denied = app.delete(&viewer, &format!("/v1/orgs/{acme}/members/{ada}")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");

    let owner = app.token("ada").await;
    let last_owner = app.delete(&owner, &format!("/v1/orgs/{acme}/members/{ada}")).await;
    assert_eq!(last_owner.status, StatusCode::CONFLICT);
    assert_eq!(last_owner.code(), "member.last_owner");
    let grace = app.user_id("grace");
    let removed = app.delete(&owner, &format!("/v1/orgs/{acme}/members/{grace}")).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    let gone = app.delete(&owner, &format!("/v1/orgs/{acme}/members/{grace}")).await;
    assert_eq!(gone.code(), "member.not_found");
}

#[tokio::test]
async fn invitations_are_made_accepted_listed_and_revoked() {
    let app = app().await;
    let acme = app.acme();
    let admin = app.token("alan").await;
    let invited = app
        .post(
            &admin,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "barbara@globex.example", "roles": ["viewer"] }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let token = invited.body["token"].as_str().unwrap().to_owned();

    let barbara = app.token("barbara").await;
    let accepted = app
        .post(&barbara, "/v1/invitations/accept", json!({ "token": token }))
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");
    assert_eq!(accepted.body["org"], acme);
    assert_eq!(accepted.body["roles"], json!(["viewer"]));
    let again = app
        .post(&barbara, "/v1/invitations/accept", json!({ "token": token }))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "invitation.already_used");
    let bogus = app
        .post(&barbara, "/v1/invitations/accept", json!({ "token": "not-a-token" }))
        .await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND, "{bogus:?}");

    let list = app.get(&admin, &format!("/v1/orgs/{acme}/invitations")).await;
    assert_eq!(list.status, StatusCode::OK);
    let pending = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["state"] == "pending")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = app
        .delete(&admin, &format!("/v1/orgs/{acme}/invitations/{pending}"))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_eq!(revoked.body["state"], "revoked");
    let twice = app
        .delete(&admin, &format!("/v1/orgs/{acme}/invitations/{pending}"))
        .await;
    assert_eq!(twice.status, StatusCode::GONE);
    assert_eq!(twice.code(), "invitation.revoked");

    // Another org's admin cannot see acme's invitations.
    let hedy = app.token("hedy").await;
    let elsewhere = app
        .delete(&hedy, &format!("/v1/orgs/{acme}/invitations/{pending}"))
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.code(), "org.not_found");
    let member = app.token("grace").await;
    let denied = app
        .post(
            &member,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "x@acme.example", "roles": ["member"] }),
        )
        .await;
    assert_eq!(denied.code(), "access.denied");
}

#[tokio::test]
async fn custom_roles_are_defined_assigned_unassigned_and_deleted() {
    let app = app().await;
    let acme = app.acme();
    let owner = app.token("ada").await;
    let role = json!({
        "name": "reports-reader",
        "parent": "viewer",
        "permissions": [{ "object": "reports", "action": "read" }]
    });
    let created = app.post(&owner, &format!("/v1/orgs/{acme}/roles"), role.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["permissions"][0]["effect"], "allow");
    let exists = app.post(&owner, &format!("/v1/orgs/{acme}/roles"), role).await;
    assert_eq!(exists.code(), "role.already_exists");
    let builtin = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/roles"),
            json!({ "name": "admin", "permissions": [] }),
        )
        .await;
    assert_eq!(builtin.status, StatusCode::CONFLICT);
    assert_eq!(builtin.code(), "role.builtin");
    let list = app.get(&owner, &format!("/v1/orgs/{acme}/roles")).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

    let linus = app.user_id("linus");
    let assigned = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/members/{linus}/roles"),
            json!({ "role": "reports-reader" }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");
    assert!(
        assigned.body["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("reports-reader"))
    );
    let in_use = app
        .delete(&owner, &format!("/v1/orgs/{acme}/roles/reports-reader"))
        .await;
    assert_eq!(in_use.code(), "role.in_use");
    let unassigned = app
        .delete(&owner, &format!("/v1/orgs/{acme}/members/{linus}/roles/reports-reader"))
        .await;
    assert_eq!(unassigned.status, StatusCode::OK, "{unassigned:?}");
    assert_eq!(unassigned.body["roles"], json!(["viewer"]));
    // `viewer` is now Linus's only role: taking it is a conflict with the membership's
    // state (remove the member instead), and the membership is unchanged.
    let only_role = app
        .delete(&owner, &format!("/v1/orgs/{acme}/members/{linus}/roles/viewer"))
        .await;
    only_role.assert_problem(StatusCode::CONFLICT, "member.last_role");
    assert_eq!(only_role.body["param"], "role");
    let members = app.get(&owner, &format!("/v1/orgs/{acme}/members?limit=100")).await;
    let kept = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == json!(linus.to_string()))
        .unwrap();
    assert_eq!(kept["roles"], json!(["viewer"]), "{members:?}");
    let deleted = app
        .delete(&owner, &format!("/v1/orgs/{acme}/roles/reports-reader"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let unknown = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/members/{linus}/roles"),
            json!({ "role": "nope" }),
        )
        .await;
    assert_eq!(unknown.code(), "role.not_found");

    let viewer = app.token("linus").await;
    let denied = app
        .post(
            &viewer,
            &format!("/v1/orgs/{acme}/roles"),
            json!({ "name": "x", "permissions": [] }),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");
}

#[tokio::test]
async fn a_viewer_changing_roles_is_refused_before_the_change_is_validated() {
    let app = app().await;
    let acme = app.acme();
    let viewer = app.token("linus").await;
    let ada = app.user_id("ada");
    // Ada's only role: taking it would leave her none (`member.last_role`), but a viewer
    // may not take roles at all, and that is what they learn.
    let only_role = app
        .delete(&viewer, &format!("/v1/orgs/{acme}/members/{ada}/roles/owner"))
        .await;
    only_role.assert_problem(StatusCode::FORBIDDEN, "access.denied");
    // A role Ada does not hold, and a role the org does not define: still forbidden.
    let not_held = app
        .delete(&viewer, &format!("/v1/orgs/{acme}/members/{ada}/roles/admin"))
        .await;
    not_held.assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let undefined = app
        .post(
            &viewer,
            &format!("/v1/orgs/{acme}/members/{ada}/roles"),
            json!({ "role": "nope" }),
        )
        .await;
    undefined.assert_problem(StatusCode::FORBIDDEN, "access.denied");

    // Those allowed still get the validation and not-found answers.
    let owner = app.token("ada").await;
    let last = app
        .delete(&owner, &format!("/v1/orgs/{acme}/members/{ada}/roles/owner"))
        .await;
    last.assert_problem(StatusCode::CONFLICT, "member.last_role");
    let not_held = app
        .delete(&owner, &format!("/v1/orgs/{acme}/members/{ada}/roles/admin"))
        .await;
    not_held.assert_problem(StatusCode::NOT_FOUND, "role.not_found");
    let undefined = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/members/{ada}/roles"),
            json!({ "role": "nope" }),
        )
        .await;
    undefined.assert_problem(StatusCode::NOT_FOUND, "role.not_found");
}

#[tokio::test]
async fn writing_a_role_beyond_ones_own_permissions_is_refused_before_the_role_is_validated() {
    let app = app().await;
    let acme = app.acme();
    // Alan (admin) manages roles but holds no `billing` permission: whatever the role's
    // name or shape, granting `billing read` is not his to give.
    let admin = app.token("alan").await;
    for role in [
        json!({ "name": "owner", "permissions": [{ "object": "billing", "action": "read" }] }),
        json!({ "name": "bill-reader", "parent": "bill-reader", "permissions": [{ "object": "billing", "action": "read" }] }),
    ] {
        let refused = app.post(&admin, &format!("/v1/orgs/{acme}/roles"), role).await;
        refused.assert_problem(StatusCode::FORBIDDEN, "access.denied");
    }
}

/// Issue 18, bounded reads: an org's custom roles are listed a page at a time (`limit`,
/// and the `next` cursor); the pages hold every role once, by name, and a cursor that is
/// not a role name is refused.
#[tokio::test]
async fn custom_roles_page_with_a_cursor() {
    let app = app().await;
    let owner = app.token("ada").await;
    let uri = format!("/v1/orgs/{}/roles", app.acme());
    for name in ["paged-c", "paged-a", "paged-b"] {
        let role = json!({ "name": name, "parent": "viewer", "permissions": [] });
        let created = app.post(&owner, &uri, role).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    }
    let all = app.get(&owner, &format!("{uri}?limit=100")).await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    let every: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(every.len() >= 3, "{all:?}");
    assert!(all.body["next"].is_null(), "{all:?}");
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page_uri = match &next {
            Some(cursor) => format!("{uri}?limit=1&cursor={cursor}"),
            None => format!("{uri}?limit=1"),
        };
        let page = app.get(&owner, &page_uri).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 1, "a page holds at most `limit`: {page:?}");
        paged.extend(items.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        match page.body["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
        assert!(paged.len() <= every.len(), "the pages end");
    }
    assert_eq!(paged, every, "the pages hold every role once, by name");
    let bad = app.get(&owner, &format!("{uri}?cursor=Not%20A%20Name")).await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(bad.body["param"], "cursor");
}

#[tokio::test]
async fn a_custom_role_is_replaced_with_its_permissions_validated_as_on_creation() {
    let app = app().await;
    let acme = app.acme();
    let owner = app.token("ada").await;
    let uri = format!("/v1/orgs/{acme}/roles/reports-reader");
    let created = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/roles"),
            json!({ "name": "reports-reader", "parent": "viewer",
                    "permissions": [{ "object": "reports", "action": "read" }] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");

    let body = json!({ "permissions": [
        { "object": "reports", "action": "export" },
        { "object": "reports", "action": "delete", "effect": "deny" },
    ] });
    let replaced = app.call(&owner, Method::PUT, &uri, Some(body)).await;
    assert_eq!(replaced.status, StatusCode::OK, "{replaced:?}");
    assert_eq!(replaced.body["name"], "reports-reader");
    assert_eq!(replaced.body["parent"], Value::Null, "the parent was replaced too");
    let list = app.get(&owner, &format!("/v1/orgs/{acme}/roles")).await;
    let role = &list.body["items"][0];
    let actions: Vec<&str> = role["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "export"], "the old permissions are gone: {role}");

    // Validated as on creation, with the field's JSON path as `param`.
    let empty_action = json!({ "permissions": [
        { "object": "reports", "action": "read" },
        { "object": "reports", "action": "read all" },
    ] });
    let refused = app.call(&owner, Method::PUT, &uri, Some(empty_action)).await;
    refused.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(refused.body["param"], "permissions[1].action");
    let unknown_parent = json!({ "parent": "nope", "permissions": [] });
    let refused = app.call(&owner, Method::PUT, &uri, Some(unknown_parent)).await;
    refused.assert_problem(StatusCode::NOT_FOUND, "role.not_found");
    assert_eq!(refused.body["param"], "parent");
    let unknown_field = json!({ "name": "other", "permissions": [] });
    let refused = app.call(&owner, Method::PUT, &uri, Some(unknown_field)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");

    // Built-in roles are refused with their stable code; a role the org lacks is not found.
    let some = json!({ "permissions": [{ "object": "reports", "action": "read" }] });
    let builtin = app
        .call(
            &owner,
            Method::PUT,
            &format!("/v1/orgs/{acme}/roles/admin"),
            Some(some.clone()),
        )
        .await;
    builtin.assert_problem(StatusCode::CONFLICT, "role.builtin");
    let missing = app
        .call(
            &owner,
            Method::PUT,
            &format!("/v1/orgs/{acme}/roles/ghost-role"),
            Some(some.clone()),
        )
        .await;
    missing.assert_problem(StatusCode::NOT_FOUND, "role.not_found");

    // A viewer and a member may not, whatever the body; nor may another org's owner.
    for who in ["linus", "grace"] {
        let token = app.token(who).await;
        let denied = app.call(&token, Method::PUT, &uri, Some(json!({ "bad": 1 }))).await;
        denied.assert_problem(StatusCode::FORBIDDEN, "access.denied");
    }
    let hedy = app.token("hedy").await;
    let other = app.call(&hedy, Method::PUT, &uri, Some(some)).await;
    other.assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    // No escalation: an admin may not widen a role past what they may do themselves.
    let alan = app.token("alan").await;
    let wider = json!({ "permissions": [{ "object": "roles/owner", "action": "assign" }] });
    let refused = app.call(&alan, Method::PUT, &uri, Some(wider)).await;
    refused.assert_problem(StatusCode::FORBIDDEN, "access.denied");
}

#[tokio::test]
async fn who_can_and_what_a_member_can_do_are_answered_to_admins_and_to_oneself() {
    let app = app().await;
    let acme = app.acme();
    let owner = app.token("ada").await;
    let alan = app.token("alan").await;
    let (ada_id, alan_id, grace_id, linus_id) = (
        app.user_id("ada"),
        app.user_id("alan"),
        app.user_id("grace"),
        app.user_id("linus"),
    );

    // Who may approve a quote: the owner and the admin, each with the granting rule.
    let who = app
        .get(
            &alan,
            &format!("/v1/orgs/{acme}/who-can?object=quotes/wf_x&action=approve"),
        )
        .await;
    assert_eq!(who.status, StatusCode::OK, "{who:?}");
    assert_eq!(who.body["object"], "quotes/wf_x");
    let users: Vec<&str> = who.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["user"].as_str().unwrap())
        .collect();
    assert!(
        users.contains(&ada_id.as_str()) && users.contains(&alan_id.as_str()),
        "{who:?}"
    );
    assert!(
        !users.contains(&grace_id.as_str()) && !users.contains(&linus_id.as_str()),
        "{who:?}"
    );
    let alan_row = who.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["user"] == alan_id.as_str())
        .unwrap();
    assert_eq!(alan_row["grant"]["effect"], "allow");
    assert_eq!(alan_row["grant"]["via"][0], "admin");

    // A custom role shows in both answers once given.
    app.post(
        &owner,
        &format!("/v1/orgs/{acme}/roles"),
        json!({ "name": "reports-reader", "parent": "member",
                "permissions": [{ "object": "reports", "action": "read" }] }),
    )
    .await;
    app.post(
        &owner,
        &format!("/v1/orgs/{acme}/members/{linus_id}/roles"),
        json!({ "role": "reports-reader" }),
    )
    .await;
    let who = app
        .get(&owner, &format!("/v1/orgs/{acme}/who-can?object=reports&action=read"))
        .await;
    let linus_row = who.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["user"] == linus_id.as_str())
        .unwrap_or_else(|| panic!("linus reads reports: {who:?}"))
        .clone();
    assert_eq!(linus_row["grant"]["role"], "reports-reader");
    let perms = app
        .get(&owner, &format!("/v1/orgs/{acme}/members/{linus_id}/permissions"))
        .await;
    assert_eq!(perms.status, StatusCode::OK, "{perms:?}");
    let rules = perms.body["items"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["object"] == "reports" && r["action"] == "read" && r["via"][0] == "reports-reader"),
        "{perms:?}"
    );
    assert!(
        rules.iter().any(|r| r["via"] == json!(["reports-reader", "member"])),
        "the parent's rules come through the chain: {perms:?}"
    );

    // A viewer reads their own rules (org read), not another member's, nor who-can.
    let linus = app.token("linus").await;
    let own = app
        .get(&linus, &format!("/v1/orgs/{acme}/members/{linus_id}/permissions"))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");
    let other = app
        .get(&linus, &format!("/v1/orgs/{acme}/members/{ada_id}/permissions"))
        .await;
    other.assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let grace = app.token("grace").await;
    let who = app
        .get(&grace, &format!("/v1/orgs/{acme}/who-can?object=reports&action=read"))
        .await;
    who.assert_problem(StatusCode::FORBIDDEN, "access.denied");

    // Bad input, once allowed: typed errors naming the parameter.
    let missing = app
        .get(&owner, &format!("/v1/orgs/{acme}/who-can?object=reports"))
        .await;
    missing.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(missing.body["param"], "action");
    let long = "x".repeat(201);
    let long = app
        .get(&owner, &format!("/v1/orgs/{acme}/who-can?object={long}&action=read"))
        .await;
    assert_eq!(long.body["param"], "object", "{long:?}");
    // Odd text is asked as written: an answer or a typed refusal, never a 500.
    for odd in [
        "(",
        "cases/(a|b",
        "%5B",
        "%5C",
        "*",
        "a%20b",
        "%C3%A9t%C3%A9",
        "..%2F..",
        "%25",
    ] {
        let answer = app
            .get(&owner, &format!("/v1/orgs/{acme}/who-can?object={odd}&action={odd}"))
            .await;
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::BAD_REQUEST,
            "{odd}: {answer:?}"
        );
    }
    let bad_user = app
        .get(&owner, &format!("/v1/orgs/{acme}/members/not-an-id/permissions"))
        .await;
    bad_user.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let hedy_id = app.user_id("hedy");
    let outsider = app
        .get(&owner, &format!("/v1/orgs/{acme}/members/{hedy_id}/permissions"))
        .await;
    outsider.assert_problem(StatusCode::NOT_FOUND, "member.not_found");

    // Another org's owner learns nothing about acme.
    let hedy = app.token("hedy").await;
    for uri in [
        format!("/v1/orgs/{acme}/who-can?object=reports&action=read"),
        format!("/v1/orgs/{acme}/members/{linus_id}/permissions"),
    ] {
        app.get(&hedy, &uri)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    }
}

/// `PATCH /v1/orgs/{org_id}` on `app`: the owner renames acme and replaces its metadata
/// (a field left out stays); a member and a viewer (no `org write`) get `403` before the
/// body is read, globex's owner `404`, and a blank name, a bad metadata key or an unknown
/// field `400`, none of which changes anything; the change is in acme's audit log as
/// `org.updated` with the names and the keys, never a value, and the same update again
/// writes no second event.
async fn the_org_is_renamed_by_those_allowed_and_audited(app: &crate::common::TestApp) {
    let ada = app.token("ada").await;
    let acme = format!("/v1/orgs/{}", app.acme());
    for (who, status, code) in [
        ("grace", StatusCode::FORBIDDEN, "access.denied"),
        ("linus", StatusCode::FORBIDDEN, "access.denied"),
        ("hedy", StatusCode::NOT_FOUND, "org.not_found"),
    ] {
        let token = app.token(who).await;
        // Not even a malformed body is looked at first.
        let refused = app
            .call(&token, Method::PATCH, &acme, Some(json!({ "name": "" })))
            .await;
        assert_eq!((refused.status, refused.code()), (status, code), "{who}: {refused:?}");
    }
    for (body, param) in [
        (json!({ "name": "  " }), Some("name")),
        (json!({ "metadata": { "no spaces": "x" } }), Some("metadata")),
        (json!({ "slug": "renamed" }), None),
    ] {
        let refused = app.call(&ada, Method::PATCH, &acme, Some(body.clone())).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}: {refused:?}");
        if let Some(param) = param {
            assert_eq!(refused.body["param"], param, "{body}: {refused:?}");
        }
    }
    assert_eq!(
        app.get(&ada, &acme).await.body["name"],
        "Acme Corporation",
        "nothing changed"
    );

    let body = json!({ "name": "Acme Europe", "metadata": { "plan": "gold", "crm_id": "c-42" } });
    let renamed = app.call(&ada, Method::PATCH, &acme, Some(body.clone())).await;
    assert_eq!(renamed.status, StatusCode::OK, "{renamed:?}");
    assert_eq!(renamed.body["name"], "Acme Europe");
    assert_eq!(renamed.body["slug"], "acme", "the slug stays");
    let kept = app
        .call(&ada, Method::PATCH, &acme, Some(json!({ "name": "Acme Europe" })))
        .await;
    assert_eq!(
        kept.body["metadata"],
        json!({ "plan": "gold", "crm_id": "c-42" }),
        "{kept:?}"
    );
    let read = app.get(&ada, &acme).await;
    assert_eq!(read.body["name"], "Acme Europe");

    let events = app.get(&ada, &format!("{acme}/audit-events?action=org.updated")).await;
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the same name again wrote nothing: {events:?}");
    let ada_id = app.demo.user("ada").unwrap().id.to_string();
    assert_eq!(items[0]["actor"]["id"], ada_id.as_str());
    assert_eq!(
        items[0]["targets"][0],
        json!({ "type": "organization", "id": app.acme() })
    );
    assert_eq!(
        items[0]["metadata"]["name"],
        json!({ "before": "Acme Corporation", "after": "Acme Europe" })
    );
    assert_eq!(items[0]["metadata"]["changed"], json!(["name", "metadata"]));
    let keys = items[0]["metadata"]["metadata_keys"].as_array().unwrap();
    assert!(
        keys.contains(&json!("plan")) && keys.contains(&json!("crm_id")),
        "{keys:?}"
    );
    assert!(
        !events.body.to_string().contains("c-42"),
        "no metadata value in the log"
    );
}

#[tokio::test]
async fn the_org_is_renamed_by_those_allowed_and_audited_on_sqlite() {
    the_org_is_renamed_by_those_allowed_and_audited(&app().await).await;
}

#[tokio::test]
async fn the_org_is_renamed_by_those_allowed_and_audited_on_postgres() {
    let Some(schema) = portal_http::test_schema::TestSchema::from_env()
        .await
        .expect("a schema of its own on Postgres")
    else {
        return;
    };
    let url = schema.url().to_owned();
    let app = crate::common::app_with(|config| config.database_url = url).await;
    the_org_is_renamed_by_those_allowed_and_audited(&app).await;
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}
