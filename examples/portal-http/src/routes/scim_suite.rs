//! The SCIM suite both servers' tests run through their real routers (on SQLite, and the
//! axum server on Postgres too): one provisioning story over the demo data, checked at
//! every step ([`run`]).
//!
//! It proves, through HTTP: discovery answers `application/scim+json`; only an API key
//! of the org with the scope `scim provision` is let in (no credentials `401`, a session
//! or another key `403`, all in SCIM's error schema); a create links the portal user with
//! the same email (Grace, a member of `acme`) and carries `meta` (version, location) and an
//! `ETag`; `filter=userName eq "…"` (ignoring case), `externalId eq`, `startIndex`/`count`
//! list; a malformed filter is `400 invalidFilter`; a key of another org sees nothing (its
//! list is empty, every id of this org `404` as a ghost id); Okta's `replace`
//! `{"active": false}` removes the membership and revokes the user's sessions; a taken
//! `userName` is `409 uniqueness`; a stale `If-Match` is `412`; a delete is `204`; and
//! groups are created with members, filtered, kept from other orgs, patched (Entra's
//! `members[value eq "…"]` removal) and deleted.

use http::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::scim::{ERROR_SCHEMA, SCIM_JSON};
use super::tenancy_probe::ProbeRequest;
use crate::seed::{DEMO_PASSWORD, DemoData};

/// What a server answered to one request of the suite.
#[derive(Debug, Clone)]
pub struct ScimAnswer {
    /// The status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The `ETag`, if any.
    pub etag: Option<String>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
}

fn request(method: Method, uri: &str, bearer: Option<&str>, body: Option<&Value>) -> ProbeRequest {
    let mut headers = Vec::new();
    if let Some(bearer) = bearer {
        headers.push(("authorization".to_owned(), format!("Bearer {bearer}")));
    }
    if body.is_some() {
        headers.push(("content-type".to_owned(), SCIM_JSON.to_owned()));
    }
    ProbeRequest {
        method,
        uri: uri.to_owned(),
        headers,
        body: body.map(Value::to_string),
    }
}

fn ensure(ok: bool, what: &str, answer: &ScimAnswer) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("{what}: {answer:?}")) }
}

/// Asserts `answer` is a SCIM error with `status` (and `scim_type`, when given).
fn scim_error(what: &str, answer: &ScimAnswer, status: u16, scim_type: Option<&str>) -> Result<(), String> {
    ensure(
        answer.status == status
            && answer.content_type.as_deref() == Some(SCIM_JSON)
            && answer.body["schemas"] == json!([ERROR_SCHEMA])
            && answer.body["status"] == status.to_string().as_str()
            && scim_type.is_none_or(|t| answer.body["scimType"] == t),
        &format!("{what}: a SCIM error {status} {scim_type:?}"),
        answer,
    )
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// Runs the suite over `demo` (the servers' seeded demo data); `call` sends one request
/// through the server under test.
///
/// # Errors
///
/// The first step that answered otherwise, with the answer.
pub async fn run(demo: &DemoData, call: impl AsyncFn(ProbeRequest) -> ScimAnswer) -> Result<(), String> {
    let sign_in = async |local: &str| -> Result<String, String> {
        let email = &demo.user(local).ok_or_else(|| format!("no demo user {local}"))?.email;
        let body = json!({ "email": email, "password": DEMO_PASSWORD });
        let mut req = request(Method::POST, "/v1/auth/sign-in", None, Some(&body));
        req.headers[0].1 = "application/json".to_owned();
        let answer = call(req).await;
        ensure(answer.status == 200, &format!("{local} signs in"), &answer)?;
        Ok(text(&answer.body["session_token"]))
    };
    let ada = sign_in("ada").await?;
    let hedy = sign_in("hedy").await?;
    let grace_session = sign_in("grace").await?;
    let (acme, globex) = (demo.acme.to_string(), demo.globex.to_string());
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&Rfc3339)
        .map_err(|e| e.to_string())?;
    let make_key = async |owner: &str, org: &str, scope: &str| -> Result<String, String> {
        let body = json!({ "name": "directory", "scopes": [scope], "expires_at": expires });
        let mut req = request(
            Method::POST,
            &format!("/v1/orgs/{org}/api-keys"),
            Some(owner),
            Some(&body),
        );
        req.headers[1].1 = "application/json".to_owned();
        let answer = call(req).await;
        ensure(answer.status == 201, "an owner makes a key", &answer)?;
        Ok(text(&answer.body["key"]))
    };
    let key = make_key(&ada, &acme, "scim provision").await?;
    let cases_key = make_key(&ada, &acme, "cases/* read").await?;
    let globex_key = make_key(&hedy, &globex, "scim provision").await?;

    let config = call(request(Method::GET, "/scim/v2/ServiceProviderConfig", None, None)).await;
    ensure(
        config.status == 200
            && config.content_type.as_deref() == Some(SCIM_JSON)
            && config.body["patch"]["supported"] == true,
        "discovery",
        &config,
    )?;
    for path in ["/scim/v2/ResourceTypes", "/scim/v2/Schemas"] {
        let answer = call(request(Method::GET, path, None, None)).await;
        ensure(
            answer.status == 200 && answer.body["Resources"][0]["name"] == "User",
            path,
            &answer,
        )?;
    }

    let users = "/scim/v2/Users";
    let nobody = call(request(Method::GET, users, None, None)).await;
    scim_error("no credentials", &nobody, 401, None)?;
    for (who, token) in [("a session", &ada), ("a key without `scim provision`", &cases_key)] {
        let refused = call(request(Method::GET, users, Some(token), None)).await;
        scim_error(who, &refused, 403, None)?;
    }

    // Grace is a member of acme already: provisioning links her, not a duplicate.
    let grace_email = &demo.user("grace").ok_or("no grace")?.email;
    let grace_body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": grace_email,
        "externalId": "00u-grace",
        "name": { "givenName": "Grace", "familyName": "Hopper" },
        "emails": [{ "value": grace_email, "type": "work", "primary": true }],
        "active": true,
    });
    let created = call(request(Method::POST, users, Some(&key), Some(&grace_body))).await;
    let grace_id = demo.user("grace").ok_or("no grace")?.id.to_string();
    ensure(
        created.status == 201
            && created.content_type.as_deref() == Some(SCIM_JSON)
            && created.body["id"] == grace_id.as_str()
            && created.body["meta"]["version"] == "W/\"1\""
            && created.body["meta"]["resourceType"] == "User"
            && text(&created.body["meta"]["location"]).ends_with(&format!("/scim/v2/Users/{grace_id}"))
            && created.etag.as_deref() == Some("W/\"1\""),
        "a create links the member with the email",
        &created,
    )?;
    let hire = json!({ "userName": "new.hire@acme.example", "externalId": "00u-hire" });
    let hired = call(request(Method::POST, users, Some(&key), Some(&hire))).await;
    ensure(
        hired.status == 201 && hired.body["active"] == true,
        "a new user",
        &hired,
    )?;
    let hire_id = text(&hired.body["id"]);
    let taken = call(request(Method::POST, users, Some(&key), Some(&hire))).await;
    scim_error("a taken userName", &taken, 409, Some("uniqueness"))?;

    let by_name = format!(
        "{users}?filter={}",
        form_urlencoded::byte_serialize(format!("userName eq \"{}\"", grace_email.to_uppercase()).as_bytes())
            .collect::<String>()
    );
    let found = call(request(Method::GET, &by_name, Some(&key), None)).await;
    ensure(
        found.status == 200 && found.body["totalResults"] == 1 && found.body["Resources"][0]["id"] == grace_id.as_str(),
        "filter userName eq, ignoring case",
        &found,
    )?;
    let by_external = format!("{users}?filter=externalId%20eq%20%2200u-hire%22");
    let found = call(request(Method::GET, &by_external, Some(&key), None)).await;
    ensure(
        found.body["totalResults"] == 1 && found.body["Resources"][0]["id"] == hire_id.as_str(),
        "filter externalId eq",
        &found,
    )?;
    let page = call(request(
        Method::GET,
        &format!("{users}?startIndex=2&count=1"),
        Some(&key),
        None,
    ))
    .await;
    ensure(
        page.body["totalResults"] == 2 && page.body["itemsPerPage"] == 1 && page.body["startIndex"] == 2,
        "startIndex and count",
        &page,
    )?;
    let bad = call(request(
        Method::GET,
        &format!("{users}?filter=userName%20zz%20%22x%22"),
        Some(&key),
        None,
    ))
    .await;
    scim_error("a malformed filter", &bad, 400, Some("invalidFilter"))?;

    // Another org's directory sees nothing of acme: its list is empty and acme's ids
    // answer as ghosts do.
    let theirs = call(request(Method::GET, users, Some(&globex_key), None)).await;
    ensure(
        theirs.status == 200 && theirs.body["totalResults"] == 0,
        "another org's list",
        &theirs,
    )?;
    let off = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "value": { "active": false } }],
    });
    let ghost = "usr_01jd5x8y6kf3w9q2m7c4t0vbnr";
    for id in [grace_id.as_str(), ghost] {
        let at = format!("{users}/{id}");
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(&off)),
            (Method::PUT, Some(&grace_body)),
            (Method::DELETE, None),
        ] {
            let answer = call(request(method.clone(), &at, Some(&globex_key), body)).await;
            scim_error(&format!("{method} {at} by another org"), &answer, 404, None)?;
        }
    }

    // Okta deprovisions: `replace` `{"active": false}`.
    let at = format!("{users}/{grace_id}");
    let patched = call(request(Method::PATCH, &at, Some(&key), Some(&off))).await;
    ensure(
        patched.status == 200 && patched.body["active"] == false && patched.etag.as_deref() == Some("W/\"2\""),
        "patch active false",
        &patched,
    )?;
    let me = call(request(Method::GET, "/v1/auth/me", Some(&grace_session), None)).await;
    ensure(me.status == 401, "the deprovisioned user's session is revoked", &me)?;
    let members = call(request(
        Method::GET,
        &format!("/v1/orgs/{acme}/members?limit=100"),
        Some(&ada),
        None,
    ))
    .await;
    let listed = members.body["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|m| m["user"]["id"] == grace_id.as_str()));
    ensure(members.status == 200 && !listed, "the membership is gone", &members)?;

    let mut stale = request(Method::PUT, &at, Some(&key), Some(&grace_body));
    stale.headers.push(("if-match".to_owned(), "W/\"1\"".to_owned()));
    let stale = call(stale).await;
    scim_error("a stale If-Match", &stale, 412, None)?;

    // Groups: a create with a member, a filter by name, another org's key refused as
    // for a ghost, Entra's `remove` of `members[value eq "…"]`, a delete.
    let groups = "/scim/v2/Groups";
    let team = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": [{ "value": hire_id }],
    });
    let made = call(request(Method::POST, groups, Some(&key), Some(&team))).await;
    ensure(
        made.status == 201
            && made.body["members"][0]["value"] == hire_id.as_str()
            && made.body["meta"]["resourceType"] == "Group"
            && made.etag.as_deref() == Some("W/\"1\""),
        "a group with a member",
        &made,
    )?;
    let group_at = format!("{groups}/{}", text(&made.body["id"]));
    let named = call(request(
        Method::GET,
        &format!("{groups}?filter=displayName%20eq%20%22engineering%22"),
        Some(&key),
        None,
    ))
    .await;
    ensure(named.body["totalResults"] == 1, "filter displayName eq", &named)?;
    for at in [group_at.as_str(), "/scim/v2/Groups/grp_01jd5x8y6kf3w9q2m7c4t0vbnr"] {
        let answer = call(request(Method::GET, at, Some(&globex_key), None)).await;
        scim_error("another org's group", &answer, 404, None)?;
    }
    let remove = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Remove", "path": format!("members[value eq \"{hire_id}\"]") }],
    });
    let removed = call(request(Method::PATCH, &group_at, Some(&key), Some(&remove))).await;
    ensure(
        removed.status == 200 && removed.body["members"] == json!([]),
        "a member removed by a path filter",
        &removed,
    )?;
    let dropped = call(request(Method::DELETE, &group_at, Some(&key), None)).await;
    ensure(dropped.status == 204, "a group deleted", &dropped)?;

    let hire_at = format!("{users}/{hire_id}");
    let deleted = call(request(Method::DELETE, &hire_at, Some(&key), None)).await;
    ensure(deleted.status == 204, "delete", &deleted)?;
    let gone = call(request(Method::GET, &hire_at, Some(&key), None)).await;
    scim_error("a deleted user", &gone, 404, None)?;
    Ok(())
}

/// The roles `user` holds in `org`, read by `owner` (a session) from the members list;
/// `None` when it is no member.
async fn member_roles(
    call: &impl AsyncFn(ProbeRequest) -> ScimAnswer,
    owner: &str,
    org: &str,
    user: &str,
) -> Result<Option<Vec<String>>, String> {
    let members = call(request(
        Method::GET,
        &format!("/v1/orgs/{org}/members?limit=100"),
        Some(owner),
        None,
    ))
    .await;
    ensure(members.status == 200, "the members list", &members)?;
    Ok(members.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|m| m["user"]["id"] == user))
        .map(|m| {
            m["roles"]
                .as_array()
                .map(|roles| roles.iter().map(text).collect())
                .unwrap_or_default()
        }))
}

/// One bad request of the suite: what it is, method, URI, body, the status and `scimType`
/// it must answer.
type BadInput = (&'static str, Method, String, Option<Value>, u16, &'static str);

fn patch_op(operations: Value) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations })
}

fn filter_uri(path: &str, filter: &str, extra: &str) -> String {
    format!(
        "{path}?filter={}{extra}",
        form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    )
}

/// Replays, through the server, the request sequences Okta and Microsoft Entra ID send
/// (from their public SCIM documentation: Okta's "SCIM 2.0 protocol reference" and
/// Microsoft's "Tutorial: Develop and plan provisioning for a SCIM endpoint"), with the
/// org's owner mapping the pushed groups to roles over the portal's own API
/// (`PUT /v1/orgs/{org_id}/scim-groups/{group_id}/roles`), checking memberships and roles
/// after every step. Also the last-owner rule (deactivating the only owner is `409` and
/// changes nothing), attribute selection, and bad input answered in SCIM's error schema
/// with nothing changed (a wrong `schemas`, an unknown attribute, a PATCH path this
/// server does not have, an oversized body).
///
/// # Errors
///
/// The first step that answered otherwise, with the answer.
pub async fn run_identity_providers(
    demo: &DemoData,
    call: impl AsyncFn(ProbeRequest) -> ScimAnswer,
) -> Result<(), String> {
    let ada = {
        let email = &demo.user("ada").ok_or("no demo user ada")?.email;
        let body = json!({ "email": email, "password": DEMO_PASSWORD });
        let mut req = request(Method::POST, "/v1/auth/sign-in", None, Some(&body));
        req.headers[0].1 = "application/json".to_owned();
        let answer = call(req).await;
        ensure(answer.status == 200, "ada signs in", &answer)?;
        text(&answer.body["session_token"])
    };
    let acme = demo.acme.to_string();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&Rfc3339)
        .map_err(|e| e.to_string())?;
    let made = {
        let body = json!({ "name": "okta", "scopes": ["scim provision"], "expires_at": expires });
        let mut req = request(
            Method::POST,
            &format!("/v1/orgs/{acme}/api-keys"),
            Some(&ada),
            Some(&body),
        );
        req.headers[1].1 = "application/json".to_owned();
        call(req).await
    };
    ensure(made.status == 201, "the owner makes the directory's key", &made)?;
    let key = text(&made.body["key"]);
    let users = "/scim/v2/Users";
    let groups = "/scim/v2/Groups";
    let map_roles = async |group: &str, roles: Value| -> ScimAnswer {
        let body = json!({ "roles": roles });
        let mut req = request(
            Method::PUT,
            &format!("/v1/orgs/{acme}/scim-groups/{group}/roles"),
            Some(&ada),
            Some(&body),
        );
        req.headers[1].1 = "application/json".to_owned();
        call(req).await
    };

    // --- Okta ---
    // 1. Okta looks the user up by userName before it creates it.
    let okta_name = "isabella.okta@acme.example";
    let lookup = filter_uri(
        users,
        &format!("userName eq \"{okta_name}\""),
        "&startIndex=1&count=100",
    );
    let none = call(request(Method::GET, &lookup, Some(&key), None)).await;
    ensure(
        none.status == 200 && none.body["totalResults"] == 0 && none.body["Resources"] == json!([]),
        "Okta: the lookup before the create finds nobody",
        &none,
    )?;
    // 2. The create, as Okta's reference shows it (password and groups included).
    let okta_user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": okta_name,
        "name": { "givenName": "Isabella", "familyName": "Okta" },
        "emails": [{ "primary": true, "value": okta_name, "type": "work" }],
        "displayName": "Isabella Okta",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true,
    });
    let created = call(request(Method::POST, users, Some(&key), Some(&okta_user))).await;
    ensure(
        created.status == 201 && created.body["userName"] == okta_name && created.body.get("password").is_none(),
        "Okta: create user",
        &created,
    )?;
    let okta_id = text(&created.body["id"]);
    let found = call(request(Method::GET, &lookup, Some(&key), None)).await;
    ensure(
        found.body["totalResults"] == 1 && found.body["Resources"][0]["id"] == okta_id.as_str(),
        "Okta: the lookup finds the user",
        &found,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &okta_id).await? == Some(vec!["member".to_owned()]),
        "Okta: the new user is a member",
        &found,
    )?;
    // 3. A profile change is a PUT of the whole user.
    let mut renamed = okta_user.clone();
    renamed["name"]["familyName"] = json!("Okta-Smith");
    let at = format!("{users}/{okta_id}");
    let put = call(request(Method::PUT, &at, Some(&key), Some(&renamed))).await;
    ensure(
        put.status == 200 && put.body["name"]["familyName"] == "Okta-Smith" && put.etag.as_deref() == Some("W/\"2\""),
        "Okta: PUT user",
        &put,
    )?;
    // 4. A group pushed, mapped by the owner to `admin`, then a member added.
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Test SCIMv2",
        "members": [],
    });
    let pushed = call(request(Method::POST, groups, Some(&key), Some(&group))).await;
    ensure(pushed.status == 201, "Okta: push group", &pushed)?;
    let okta_group = text(&pushed.body["id"]);
    let mapped = map_roles(&okta_group, json!(["admin"])).await;
    ensure(
        mapped.status == 200 && mapped.body["roles"] == json!(["admin"]) && mapped.body["members"] == 0,
        "the owner maps the group to admin",
        &mapped,
    )?;
    let group_at = format!("{groups}/{okta_group}");
    let add =
        patch_op(json!([{ "op": "add", "path": "members", "value": [{ "value": okta_id, "display": okta_name }] }]));
    let added = call(request(Method::PATCH, &group_at, Some(&key), Some(&add))).await;
    ensure(
        added.status == 200 && added.body["members"][0]["value"] == okta_id.as_str(),
        "Okta: add a member",
        &added,
    )?;
    let mut roles = member_roles(&call, &ada, &acme, &okta_id).await?.unwrap_or_default();
    roles.sort();
    ensure(
        roles == ["admin", "member"],
        &format!(
            "a member of a group mapped to admin holds admin at once (and keeps member, which no group maps): {roles:?}"
        ),
        &added,
    )?;
    // 5. Okta renames a group with `replace` and an object value carrying its id.
    let rename =
        patch_op(json!([{ "op": "replace", "value": { "id": okta_group, "displayName": "Test SCIMv2 renamed" } }]));
    let renamed = call(request(Method::PATCH, &group_at, Some(&key), Some(&rename))).await;
    ensure(
        renamed.status == 200 && renamed.body["displayName"] == "Test SCIMv2 renamed",
        "Okta: rename group",
        &renamed,
    )?;
    // 6. Okta removes a member with a path filter: the mapped role goes at once.
    let remove = patch_op(json!([{ "op": "remove", "path": format!("members[value eq \"{okta_id}\"]") }]));
    let removed = call(request(Method::PATCH, &group_at, Some(&key), Some(&remove))).await;
    ensure(
        removed.status == 200 && removed.body["members"] == json!([]),
        "Okta: remove a member",
        &removed,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &okta_id).await? == Some(vec!["member".to_owned()]),
        "the removed member loses the mapped role",
        &removed,
    )?;
    // 7. Deactivation: `replace` with `{"active": false}`; reactivation restores the
    //    membership.
    let off = patch_op(json!([{ "op": "replace", "value": { "active": false } }]));
    let deactivated = call(request(Method::PATCH, &at, Some(&key), Some(&off))).await;
    ensure(
        deactivated.status == 200 && deactivated.body["active"] == false,
        "Okta: deactivate",
        &deactivated,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &okta_id).await?.is_none(),
        "a deactivated user is no member",
        &deactivated,
    )?;
    let on = patch_op(json!([{ "op": "replace", "value": { "active": true } }]));
    let reactivated = call(request(Method::PATCH, &at, Some(&key), Some(&on))).await;
    ensure(
        reactivated.status == 200 && reactivated.body["active"] == true,
        "Okta: reactivate",
        &reactivated,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &okta_id).await? == Some(vec!["member".to_owned()]),
        "a reactivated user is a member again",
        &reactivated,
    )?;
    let dropped = call(request(Method::DELETE, &group_at, Some(&key), None)).await;
    ensure(dropped.status == 204, "Okta: delete group", &dropped)?;

    // --- Microsoft Entra ID ---
    // 1. Entra's lookup by userName (not an email), then its create with the enterprise
    //    extension's schema and an empty `roles`.
    let entra_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1";
    let entra_email = "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com";
    let lookup = filter_uri(users, &format!("userName eq \"{entra_name}\""), "");
    let none = call(request(Method::GET, &lookup, Some(&key), None)).await;
    ensure(
        none.body["totalResults"] == 0,
        "Entra: the lookup before the create",
        &none,
    )?;
    let entra_user = json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": entra_name,
        "active": true,
        "emails": [{ "primary": true, "type": "work", "value": entra_email }],
        "meta": { "resourceType": "User" },
        "name": { "formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName" },
        "roles": [],
    });
    let created = call(request(Method::POST, users, Some(&key), Some(&entra_user))).await;
    ensure(created.status == 201, "Entra: create user", &created)?;
    let entra_id = text(&created.body["id"]);
    let at = format!("{users}/{entra_id}");
    // 2. Entra's second lookup, by externalId, with the selection it sends on groups.
    let by_external = filter_uri(users, "externalId eq \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\"", "");
    let found = call(request(Method::GET, &by_external, Some(&key), None)).await;
    ensure(
        found.body["totalResults"] == 1 && found.body["Resources"][0]["id"] == entra_id.as_str(),
        "Entra: lookup by externalId",
        &found,
    )?;
    // 3. Entra's capitalized ops: `Replace` of `emails[type eq "work"].value` and of
    //    `name.familyName` in one request.
    let update = patch_op(json!([
        { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com" },
        { "op": "Replace", "path": "name.familyName", "value": "updatedFamilyName" }
    ]));
    let updated = call(request(Method::PATCH, &at, Some(&key), Some(&update))).await;
    ensure(
        updated.status == 200
            && updated.body["emails"][0]["value"] == "updatedEmail@microsoft.com"
            && updated.body["name"]["familyName"] == "updatedFamilyName",
        "Entra: Replace with a path filter",
        &updated,
    )?;
    // 4. A group with an externalId, mapped to `viewer`; Entra adds a member with `Add`
    //    and `"$ref": null`, and removes it with `Remove` and the member in `value`.
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": { "resourceType": "Group" },
    });
    let pushed = call(request(Method::POST, groups, Some(&key), Some(&group))).await;
    ensure(
        pushed.status == 201 && pushed.body["members"] == json!([]),
        "Entra: create group",
        &pushed,
    )?;
    let entra_group = text(&pushed.body["id"]);
    let group_at = format!("{groups}/{entra_group}");
    let mapped = map_roles(&entra_group, json!(["viewer"])).await;
    ensure(mapped.status == 200, "the owner maps the group to viewer", &mapped)?;
    let add = patch_op(
        json!([{ "name": "addMember", "op": "Add", "path": "members", "value": [{ "$ref": null, "value": entra_id }] }]),
    );
    let added = call(request(Method::PATCH, &group_at, Some(&key), Some(&add))).await;
    ensure(added.status == 200, "Entra: Add member", &added)?;
    let mut roles = member_roles(&call, &ada, &acme, &entra_id).await?.unwrap_or_default();
    roles.sort();
    ensure(
        roles == ["member", "viewer"],
        &format!("the member holds viewer: {roles:?}"),
        &added,
    )?;
    // Entra's group lookup leaves the members out.
    let listed = call(request(
        Method::GET,
        &filter_uri(groups, "displayName eq \"displayName\"", "&excludedAttributes=members"),
        Some(&key),
        None,
    ))
    .await;
    ensure(
        listed.body["totalResults"] == 1
            && listed.body["Resources"][0]["id"] == entra_group.as_str()
            && listed.body["Resources"][0].get("members").is_none(),
        "Entra: group lookup with excludedAttributes=members",
        &listed,
    )?;
    let remove = patch_op(
        json!([{ "name": "removeMember", "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": entra_id }] }]),
    );
    let removed = call(request(Method::PATCH, &group_at, Some(&key), Some(&remove))).await;
    ensure(
        removed.status == 200 && removed.body["members"] == json!([]),
        "Entra: Remove member",
        &removed,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &entra_id).await? == Some(vec!["member".to_owned()]),
        "the removed member loses viewer",
        &removed,
    )?;
    // 5. Entra disables with `Replace` `active` and the string "False".
    let off = patch_op(json!([{ "op": "Replace", "path": "active", "value": "False" }]));
    let disabled = call(request(Method::PATCH, &at, Some(&key), Some(&off))).await;
    ensure(
        disabled.status == 200 && disabled.body["active"] == false,
        "Entra: disable",
        &disabled,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &entra_id).await?.is_none(),
        "a disabled user is no member",
        &disabled,
    )?;

    // --- Attribute selection ---
    let only = call(request(
        Method::GET,
        &format!("{at}?attributes=userName,name.givenName"),
        Some(&key),
        None,
    ))
    .await;
    ensure(
        only.status == 200
            && only.body["userName"] == entra_name
            && only.body["id"] == entra_id.as_str()
            && only.body["name"] == json!({ "givenName": "givenName" })
            && only.body.get("emails").is_none()
            && only.body.get("active").is_none(),
        "attributes=userName,name.givenName",
        &only,
    )?;
    let without = call(request(
        Method::GET,
        &format!("{at}?excludedAttributes=emails,urn:ietf:params:scim:schemas:core:2.0:User:name.formatted"),
        Some(&key),
        None,
    ))
    .await;
    ensure(
        without.status == 200
            && without.body.get("emails").is_none()
            && without.body["name"].get("formatted").is_none()
            && without.body["name"]["givenName"] == "givenName",
        "excludedAttributes=emails,…name.formatted",
        &without,
    )?;

    // --- The last owner: deactivating acme's only owner is refused, nothing changes ---
    let ada_email = &demo.user("ada").ok_or("no demo user ada")?.email;
    let ada_id = demo.user("ada").ok_or("no demo user ada")?.id.to_string();
    let linked = call(request(
        Method::POST,
        users,
        Some(&key),
        Some(&json!({ "userName": ada_email })),
    ))
    .await;
    ensure(
        linked.status == 201 && linked.body["id"] == ada_id.as_str(),
        "the owner is linked",
        &linked,
    )?;
    let ada_at = format!("{users}/{ada_id}");
    let off = patch_op(json!([{ "op": "replace", "value": { "active": false } }]));
    let refused = call(request(Method::PATCH, &ada_at, Some(&key), Some(&off))).await;
    scim_error("deactivating the only owner", &refused, 409, None)?;
    let still = call(request(Method::GET, &ada_at, Some(&key), None)).await;
    ensure(
        still.body["active"] == true && still.etag.as_deref() == Some("W/\"1\""),
        "the refused deactivation changed nothing",
        &still,
    )?;
    ensure(
        member_roles(&call, &ada, &acme, &ada_id).await? == Some(vec!["owner".to_owned()]),
        "the owner keeps owner",
        &still,
    )?;

    // --- Bad input: a SCIM error, nothing changed ---
    let before = call(request(Method::GET, &at, Some(&key), None)).await;
    let bad: [BadInput; 6] = [
        (
            "a Group schema on a user",
            Method::PUT,
            at.clone(),
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "x@acme.example" })),
            400,
            "invalidSyntax",
        ),
        (
            "an unknown attribute selected",
            Method::GET,
            format!("{users}?attributes=shoeSize"),
            None,
            400,
            "invalidValue",
        ),
        (
            "a PATCH path this server does not have",
            Method::PATCH,
            at.clone(),
            Some(patch_op(
                json!([{ "op": "replace", "path": "shoeSize", "value": "44" }]),
            )),
            400,
            "invalidPath",
        ),
        (
            "a PATCH without the PatchOp schema",
            Method::PATCH,
            at.clone(),
            Some(json!({ "Operations": [{ "op": "replace", "path": "displayName", "value": "x" }] })),
            400,
            "invalidSyntax",
        ),
        (
            "a filter on an attribute it cannot read",
            Method::GET,
            filter_uri(users, "shoeSize eq \"44\"", ""),
            None,
            400,
            "invalidFilter",
        ),
        (
            "an oversized body",
            Method::PUT,
            at.clone(),
            Some(json!({ "userName": entra_name, "displayName": "x".repeat(70 * 1024) })),
            413,
            "tooLarge",
        ),
    ];
    for (what, method, uri, body, status, scim_type) in bad {
        let answer = call(request(method, &uri, Some(&key), body.as_ref())).await;
        scim_error(what, &answer, status, Some(scim_type))?;
    }
    let after = call(request(Method::GET, &at, Some(&key), None)).await;
    ensure(
        after.status == 200 && after.body == before.body,
        "bad input changed nothing",
        &after,
    )?;
    Ok(())
}
