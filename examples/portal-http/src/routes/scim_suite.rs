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
        .is_some_and(|items| items.iter().any(|m| m["user"] == grace_id.as_str()));
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
