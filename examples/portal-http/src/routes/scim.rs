//! SCIM 2.0 (RFC 7643, RFC 7644) under `/scim/v2`: an org's identity provider provisions
//! users and groups through [`ScimService`](portal_core::scim::ScimService).
//!
//! - **Who.** Every `Users` and `Groups` operation takes `Authorization: Bearer` with an API key of
//!   the org whose scopes hold `scim provision`; the org is the key's, never a part of the
//!   URL. Any other credential (a session, a session cookie, a JWT) is refused with `403`,
//!   a key without the scope by the gate with `403`, and a user or group of another org
//!   answers `404` as a missing one. The discovery resources (`ServiceProviderConfig`,
//!   `ResourceTypes`, `Schemas`) describe the server, not an org, and are public
//!   (RFC 7644 §4 leaves it to the service provider).
//! - **Wire.** Bodies are `application/scim+json` (a request may also say
//!   `application/json`); every error of these routes answers in SCIM's error schema
//!   (`schemas: [urn:ietf:params:scim:api:messages:2.0:Error]`, `status` as a string,
//!   `scimType` where RFC 7644 §3.12 has one, `detail`), never problem+json. A stale
//!   `If-Match` answers `412`.
//! - **Versions.** `meta.version` and the `ETag` header are `W/"<version>"`; `PUT` and
//!   `PATCH` honour `If-Match` when sent.
//! - **Not in the OpenAPI document.** SCIM is its own protocol, described by its RFCs and
//!   its discovery resources, so [`Route::is_documented`](super::Route::is_documented) is
//!   false for `/scim/…` and the table-against-document check skips these routes; the
//!   servers still serve them from the one table (and `check_served` calls them).

use http::StatusCode;
use http::header::{self, HeaderValue};
use portal_core::access::permissions::SCIM_PROVISION;
use portal_core::ids::{GroupId, OrgId, RequestId, UserId};
use portal_core::scim::filter::Filter;
use portal_core::scim::patch;
use portal_core::scim::{ScimEmail, ScimGroup, ScimUser};
use portal_core::{ErrorCode, PortalError, Principal};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

use super::{Request, Response};
use crate::api::Api;
use crate::error::ApiError;
use crate::request::Caller;

/// Where the SCIM routes live.
pub const SCIM_PREFIX: &str = "/scim/v2";

/// `application/scim+json`, the content type of every SCIM body.
pub const SCIM_JSON: &str = "application/scim+json";

/// The schema URN of a User.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The schema URN of a Group.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The schema URN of a list answer.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The schema URN of an error answer.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The most resources one list page holds (`count`), as `ServiceProviderConfig` says.
pub const MAX_RESULTS: usize = 200;

/// How many users one store read takes while a filtered listing walks the org.
const SCAN_PAGE: usize = 500;

/// The SCIM answer of a SCIM operation: its response, or its error in SCIM's error schema.
fn answer(req: &Request, result: Result<Response, ApiError>) -> Result<Response, ApiError> {
    Ok(result.unwrap_or_else(|err| error_response(&err, req.meta.request_id)))
}

/// RFC 7644 §3.12's `scimType` of an error, where one fits.
fn scim_type(err: &ApiError) -> Option<&'static str> {
    let error = err.portal_error();
    match err.code() {
        ErrorCode::ScimUniqueness => Some("uniqueness"),
        ErrorCode::InvalidField => match error.param() {
            Some("filter") => Some("invalidFilter"),
            Some("path") => Some("invalidPath"),
            Some("schemas") => Some("invalidSyntax"),
            _ => Some("invalidValue"),
        },
        ErrorCode::MalformedRequest | ErrorCode::UnsupportedMediaType => Some("invalidSyntax"),
        ErrorCode::PayloadTooLarge => Some("tooLarge"),
        _ => None,
    }
}

/// `err` in SCIM's error schema; a stale version answers `412 Precondition Failed`, as
/// RFC 7644 §3.14 asks. The `detail` is the problem's (redacted for server faults).
pub(crate) fn error_response(err: &ApiError, request_id: RequestId) -> Response {
    let status = if err.code() == ErrorCode::VersionConflict {
        412
    } else {
        err.status()
    };
    let detail = err.to_problem(request_id, None).detail;
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(kind) = scim_type(err) {
        body["scimType"] = Value::from(kind);
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::bytes(status, SCIM_JSON, serde_json::to_vec(&body).unwrap_or_default())
}

/// `body` as `application/scim+json` with `status`.
fn scim_json(status: StatusCode, body: &Value) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|err| ApiError::new(ErrorCode::Internal, format!("the response did not serialize: {err}")))?;
    Ok(Response::bytes(status, SCIM_JSON, bytes))
}

/// The caller and its org: an API key's (the gate checks its `scim provision` scope).
///
/// The key is authorized `scim provision` here, before anything of the request is parsed,
/// so a key without the scope never learns what its request got wrong.
async fn directory(api: &Api, req: &Request) -> Result<(Caller, OrgId), ApiError> {
    let mut caller = req.authenticate(api).await?;
    let Principal::ApiKey { org, .. } = caller.authenticated().principal else {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "SCIM takes an API key of the org with the scope `scim provision`",
        ));
    };
    api.authorize_first(&mut caller, org, SCIM_PROVISION).await?;
    Ok((caller, org))
}

/// `W/"<version>"`, the `meta.version` and `ETag` of a resource.
fn version_tag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match` names (`W/"3"` or `"3"`), if the header is sent.
fn if_match(req: &Request) -> Result<Option<u64>, ApiError> {
    let Some(header) = req.if_match() else {
        return Ok(None);
    };
    let tag = header.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid_field("If-Match", "`If-Match` must be one entity tag such as `W/\"3\"`"))
}

/// The base URL of resource locations: the request's `Host` (scheme per the cookie
/// setting, which is on behind HTTPS), else a path.
fn base(api: &Api, req: &Request) -> String {
    let scheme = if api.config().cookie_secure { "https" } else { "http" };
    match req.header(header::HOST.as_str()) {
        Some(host) if !host.is_empty() && host.chars().all(|c| c.is_ascii_graphic()) => {
            format!("{scheme}://{host}{SCIM_PREFIX}")
        }
        _ => SCIM_PREFIX.to_owned(),
    }
}

fn rfc3339(time: time::OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

/// A user as a SCIM User resource.
fn user_json(base: &str, user: &ScimUser) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([USER_SCHEMA]));
    body.insert("id".into(), Value::from(user.user.to_string()));
    if let Some(external) = &user.external_id {
        body.insert("externalId".into(), Value::from(external.clone()));
    }
    body.insert("userName".into(), Value::from(user.user_name.clone()));
    let name = &user.profile.name;
    let mut name_json = Map::new();
    for (key, value) in [
        ("formatted", &name.formatted),
        ("givenName", &name.given_name),
        ("familyName", &name.family_name),
    ] {
        if let Some(value) = value {
            name_json.insert(key.into(), Value::from(value.clone()));
        }
    }
    if !name_json.is_empty() {
        body.insert("name".into(), Value::Object(name_json));
    }
    if let Some(display) = &user.profile.display_name {
        body.insert("displayName".into(), Value::from(display.clone()));
    }
    if !user.profile.emails.is_empty() {
        let emails: Vec<Value> = user.profile.emails.iter().map(email_json).collect();
        body.insert("emails".into(), Value::Array(emails));
    }
    body.insert("active".into(), Value::from(user.active));
    body.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": rfc3339(user.created_at),
            "lastModified": rfc3339(user.updated_at),
            "location": format!("{base}/Users/{}", user.user),
            "version": version_tag(user.version),
        }),
    );
    Value::Object(body)
}

fn email_json(email: &ScimEmail) -> Value {
    let mut value = json!({ "value": email.value, "primary": email.primary });
    if let Some(kind) = &email.kind {
        value["type"] = Value::from(kind.clone());
    }
    value
}

/// A user resource with its `ETag` (and `Location`, on create).
fn user_response(api: &Api, req: &Request, status: StatusCode, user: &ScimUser) -> Result<Response, ApiError> {
    let base = base(api, req);
    let body = Selection::parse(req.query.as_deref(), Kind::User)?.apply(user_json(&base, user));
    let mut response = scim_json(status, &body)?;
    if let Ok(tag) = HeaderValue::try_from(version_tag(user.version)) {
        response = response.with_header(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::try_from(format!("{base}/Users/{}", user.user))
    {
        response = response.with_header(header::LOCATION, location);
    }
    Ok(response)
}

/// The path's user id; a malformed one is a user that does not exist (`404`), as RFC 7644
/// treats any unknown id.
fn user_id(req: &Request) -> Result<UserId, ApiError> {
    req.param("id")?
        .parse::<UserId>()
        .map_err(|_| PortalError::new(ErrorCode::ScimUserNotFound, "SCIM user not found").into())
}

/// The body as JSON (`application/scim+json` or `application/json`).
fn body(req: &Request) -> Result<Value, ApiError> {
    req.json::<Value>()
}

/// The attributes a response carries (RFC 7644 §3.4.2.5): `attributes` (only those,
/// besides `schemas` and `id`, which are always returned) or `excludedAttributes` (all
/// but those), each a comma-separated list of attribute paths (`userName`,
/// `name.givenName`, with or without the schema URN).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Selection {
    /// `attributes`, lowercased paths without the URN; empty when not sent.
    only: Vec<String>,
    /// `excludedAttributes`, likewise.
    excluded: Vec<String>,
}

/// The attributes of each resource type a selection may name (lowercased, top level and
/// sub-attributes), besides `schemas`, `id` and `meta`.
const USER_ATTRIBUTES: &[&str] = &[
    "username",
    "externalid",
    "name",
    "name.formatted",
    "name.givenname",
    "name.familyname",
    "displayname",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "active",
];
const GROUP_ATTRIBUTES: &[&str] = &[
    "displayname",
    "externalid",
    "members",
    "members.value",
    "members.$ref",
    "members.type",
];
const COMMON_ATTRIBUTES: &[&str] = &[
    "schemas",
    "id",
    "meta",
    "meta.resourcetype",
    "meta.created",
    "meta.lastmodified",
    "meta.location",
    "meta.version",
];

/// Which resource type a selection applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn schema(self) -> &'static str {
        match self {
            Self::User => USER_SCHEMA,
            Self::Group => GROUP_SCHEMA,
        }
    }

    fn attributes(self) -> &'static [&'static str] {
        match self {
            Self::User => USER_ATTRIBUTES,
            Self::Group => GROUP_ATTRIBUTES,
        }
    }
}

/// One attribute path of a selection, checked against `kind`'s attributes: lowercased,
/// the schema URN (`urn:…:User:`) taken off.
fn selected_path(param: &'static str, raw: &str, kind: Kind) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    let lower = trimmed.to_ascii_lowercase();
    let prefix = format!("{}:", kind.schema().to_ascii_lowercase());
    let path = lower.strip_prefix(&prefix).unwrap_or(&lower).to_owned();
    if kind.attributes().contains(&path.as_str()) || COMMON_ATTRIBUTES.contains(&path.as_str()) {
        Ok(path)
    } else {
        Err(ApiError::invalid_field(
            param,
            format!("`{trimmed}` is no attribute of a {kind:?}"),
        ))
    }
}

impl Selection {
    /// Reads `attributes` and `excludedAttributes` of the query for resources of `kind`.
    fn parse(query: Option<&str>, kind: Kind) -> Result<Self, ApiError> {
        let mut selection = Self::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let (param, into) = match &*name {
                "attributes" => ("attributes", &mut selection.only),
                "excludedAttributes" => ("excludedAttributes", &mut selection.excluded),
                _ => continue,
            };
            crate::input::check_text(param, &value)?;
            for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                into.push(selected_path(param, part, kind)?);
            }
        }
        Ok(selection)
    }

    /// `resource` with only the selected attributes.
    fn apply(&self, resource: Value) -> Value {
        let Value::Object(mut fields) = resource else {
            return resource;
        };
        if !self.only.is_empty() {
            fields.retain(|key, value| {
                let key = key.to_ascii_lowercase();
                if key == "schemas" || key == "id" || self.only.contains(&key) {
                    return true;
                }
                let subs: Vec<&str> = self
                    .only
                    .iter()
                    .filter_map(|p| p.strip_prefix(&format!("{key}.")))
                    .collect();
                if subs.is_empty() {
                    return false;
                }
                keep_sub_attributes(value, |sub| subs.contains(&sub));
                true
            });
        }
        for path in &self.excluded {
            match path.split_once('.') {
                None if path != "schemas" && path != "id" => {
                    fields.retain(|key, _| !key.eq_ignore_ascii_case(path));
                }
                None => {}
                Some((top, sub)) => {
                    if let Some((_, value)) = fields.iter_mut().find(|(key, _)| key.eq_ignore_ascii_case(top)) {
                        keep_sub_attributes(value, |s| s != sub);
                    }
                }
            }
        }
        Value::Object(fields)
    }
}

/// Keeps the sub-attributes `keep` accepts (lowercased names) of a complex attribute, or
/// of each value of a multi-valued one.
fn keep_sub_attributes(value: &mut Value, keep: impl Fn(&str) -> bool + Copy) {
    match value {
        Value::Object(parts) => parts.retain(|k, _| keep(&k.to_ascii_lowercase())),
        Value::Array(items) => {
            for item in items {
                if let Value::Object(parts) = item {
                    parts.retain(|k, _| keep(&k.to_ascii_lowercase()));
                }
            }
        }
        _ => {}
    }
}

/// `startIndex`, `count` and `filter` of a listing.
struct ListQuery {
    filter: Option<Filter>,
    start_index: usize,
    count: usize,
}

fn list_query(req: &Request) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        filter: None,
        start_index: 1,
        count: MAX_RESULTS,
    };
    let number = |name: &str, value: &str| {
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::invalid_field(name.to_owned(), format!("`{name}` is an integer")))
    };
    for (name, value) in form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes()) {
        crate::input::check_text(&name, &value)?;
        match &*name {
            "filter" => query.filter = Some(Filter::parse(&value)?),
            // RFC 7644 §3.4.2.4: below 1 is 1; a negative count is 0; above the
            // maximum is the maximum.
            "startIndex" => query.start_index = usize::try_from(number("startIndex", &value)?.max(1)).unwrap_or(1),
            "count" => {
                query.count = usize::try_from(number("count", &value)?.max(0))
                    .unwrap_or(0)
                    .min(MAX_RESULTS);
            }
            // Read by `Selection::parse`. Sorting is not supported (`sort.supported`
            // is false), so the order asked for is ignored, as RFC 7644 §3.4.2.3 allows.
            "attributes" | "excludedAttributes" | "sortBy" | "sortOrder" => {}
            other => {
                return Err(ApiError::invalid_field(
                    other.to_owned(),
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    Ok(query)
}

pub(super) async fn scim_list_users(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, list_users(&api, &req).await)
}

async fn list_users(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    let ctx = caller.context();
    let query = list_query(req)?;
    let selection = Selection::parse(req.query.as_deref(), Kind::User)?;
    // A filter that narrows to an indexed lookup (`eq`/`sw` on `userName`, `externalId`,
    // `emails.value`, `displayName`) reads the store's index; others walk the org's users.
    let lookup = query.filter.as_ref().and_then(Filter::lookup);
    let mut matching: Vec<ScimUser> = Vec::new();
    let mut after = None;
    loop {
        let page = match &lookup {
            Some(lookup) => api.scim().find_users(ctx, org, lookup, after, SCAN_PAGE).await?,
            None => api.scim().list_users(ctx, org, after, SCAN_PAGE).await?,
        };
        let full = page.len() == SCAN_PAGE;
        after = page.last().map(|u| u.user);
        matching.extend(
            page.into_iter()
                .filter(|u| query.filter.as_ref().is_none_or(|f| f.matches_user(u))),
        );
        if !full {
            break;
        }
    }
    let base = base(api, req);
    let resources: Vec<Value> = matching.iter().map(|u| selection.apply(user_json(&base, u))).collect();
    list_response(&query, resources)
}

/// The page `query` asks of `matching` as a ListResponse.
fn list_response(query: &ListQuery, matching: Vec<Value>) -> Result<Response, ApiError> {
    let total = matching.len();
    let resources: Vec<Value> = matching
        .into_iter()
        .skip(query.start_index - 1)
        .take(query.count)
        .collect();
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": query.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

pub(super) async fn scim_create_user(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, create_user(&api, &req).await)
}

async fn create_user(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    // The selection is checked before anything is written.
    Selection::parse(req.query.as_deref(), Kind::User)?;
    let new = patch::user_from_resource(&body(req)?)?;
    let user = api.scim().create_user(caller.context(), org, new).await?;
    user_response(api, req, StatusCode::CREATED, &user)
}

pub(super) async fn scim_get_user(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, get_user(&api, &req).await)
}

async fn get_user(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    let user = api.scim().get_user(caller.context(), org, user_id(req)?).await?;
    user_response(api, req, StatusCode::OK, &user)
}

pub(super) async fn scim_replace_user(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, replace_user(&api, &req).await)
}

async fn replace_user(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    // The selection is checked before anything is written.
    Selection::parse(req.query.as_deref(), Kind::User)?;
    let id = user_id(req)?;
    let expected = if_match(req)?;
    let new = patch::user_from_resource(&body(req)?)?;
    let user = api
        .scim()
        .replace_user(caller.context(), org, id, new, expected)
        .await?;
    user_response(api, req, StatusCode::OK, &user)
}

pub(super) async fn scim_patch_user(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, patch_user(&api, &req).await)
}

async fn patch_user(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    // The selection is checked before anything is written.
    Selection::parse(req.query.as_deref(), Kind::User)?;
    let current = api.scim().get_user(caller.context(), org, user_id(req)?).await?;
    let expected = if_match(req)?.unwrap_or(current.version);
    let ops = patch::parse_ops(&body(req)?)?;
    let new = patch::apply_to_user(&current, &ops)?;
    let user = api
        .scim()
        .replace_user(caller.context(), org, current.user, new, Some(expected))
        .await?;
    user_response(api, req, StatusCode::OK, &user)
}

pub(super) async fn scim_delete_user(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, delete_user(&api, &req).await)
}

async fn delete_user(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    api.scim().delete_user(caller.context(), org, user_id(req)?).await?;
    Ok(Response::no_content())
}

/// A group as a SCIM Group resource.
fn group_json(base: &str, group: &ScimGroup) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| json!({ "value": m.to_string(), "$ref": format!("{base}/Users/{m}"), "type": "User" }))
        .collect();
    let mut body = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id.to_string(),
        "displayName": group.display_name,
        "members": members,
        "meta": {
            "resourceType": "Group",
            "created": rfc3339(group.created_at),
            "lastModified": rfc3339(group.updated_at),
            "location": format!("{base}/Groups/{}", group.id),
            "version": version_tag(group.version),
        },
    });
    if let Some(external) = &group.external_id {
        body["externalId"] = Value::from(external.clone());
    }
    body
}

/// A group resource with its `ETag` (and `Location`, on create).
fn group_response(api: &Api, req: &Request, status: StatusCode, group: &ScimGroup) -> Result<Response, ApiError> {
    let base = base(api, req);
    let body = Selection::parse(req.query.as_deref(), Kind::Group)?.apply(group_json(&base, group));
    let mut response = scim_json(status, &body)?;
    if let Ok(tag) = HeaderValue::try_from(version_tag(group.version)) {
        response = response.with_header(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::try_from(format!("{base}/Groups/{}", group.id))
    {
        response = response.with_header(header::LOCATION, location);
    }
    Ok(response)
}

/// The path's group id; a malformed one is a group that does not exist (`404`).
fn group_id(req: &Request) -> Result<GroupId, ApiError> {
    req.param("id")?
        .parse::<GroupId>()
        .map_err(|_| PortalError::new(ErrorCode::ScimGroupNotFound, "SCIM group not found").into())
}

pub(super) async fn scim_list_groups(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, list_groups(&api, &req).await)
}

async fn list_groups(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    let query = list_query(req)?;
    let selection = Selection::parse(req.query.as_deref(), Kind::Group)?;
    // As for users: `displayName`, `externalId` and `members.value eq` read an index.
    let lookup = query.filter.as_ref().and_then(Filter::lookup);
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = match &lookup {
            Some(lookup) => {
                api.scim()
                    .find_groups(caller.context(), org, lookup, after, SCAN_PAGE)
                    .await?
            }
            None => api.scim().list_groups(caller.context(), org, after, SCAN_PAGE).await?,
        };
        let full = page.len() == SCAN_PAGE;
        after = page.last().map(|g| g.id);
        found.extend(
            page.into_iter()
                .filter(|g| query.filter.as_ref().is_none_or(|f| f.matches_group(g))),
        );
        if !full {
            break;
        }
    }
    let base = base(api, req);
    list_response(
        &query,
        found.iter().map(|g| selection.apply(group_json(&base, g))).collect(),
    )
}

pub(super) async fn scim_create_group(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, create_group(&api, &req).await)
}

async fn create_group(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    // The selection is checked before anything is written.
    Selection::parse(req.query.as_deref(), Kind::Group)?;
    let new = patch::group_from_resource(&body(req)?)?;
    let group = api.scim().create_group(caller.context(), org, new).await?;
    group_response(api, req, StatusCode::CREATED, &group)
}

pub(super) async fn scim_get_group(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, get_group(&api, &req).await)
}

async fn get_group(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    let group = api.scim().get_group(caller.context(), org, group_id(req)?).await?;
    group_response(api, req, StatusCode::OK, &group)
}

pub(super) async fn scim_replace_group(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, replace_group(&api, &req).await)
}

async fn replace_group(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    // The selection is checked before anything is written.
    Selection::parse(req.query.as_deref(), Kind::Group)?;
    let id = group_id(req)?;
    let expected = if_match(req)?;
    let new = patch::group_from_resource(&body(req)?)?;
    let group = api
        .scim()
        .replace_group(caller.context(), org, id, new, expected)
        .await?;
    group_response(api, req, StatusCode::OK, &group)
}

pub(super) async fn scim_patch_group(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, patch_group(&api, &req).await)
}

async fn patch_group(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    // The selection is checked before anything is written.
    Selection::parse(req.query.as_deref(), Kind::Group)?;
    let current = api.scim().get_group(caller.context(), org, group_id(req)?).await?;
    let expected = if_match(req)?.unwrap_or(current.version);
    let ops = patch::parse_ops(&body(req)?)?;
    let new = patch::apply_to_group(&current, &ops)?;
    let group = api
        .scim()
        .replace_group(caller.context(), org, current.id, new, Some(expected))
        .await?;
    group_response(api, req, StatusCode::OK, &group)
}

pub(super) async fn scim_delete_group(api: Api, req: Request) -> Result<Response, ApiError> {
    answer(&req, delete_group(&api, &req).await)
}

async fn delete_group(api: &Api, req: &Request) -> Result<Response, ApiError> {
    let (caller, org) = directory(api, req).await?;
    api.scim().delete_group(caller.context(), org, group_id(req)?).await?;
    Ok(Response::no_content())
}

pub(super) async fn scim_service_provider_config(api: Api, req: Request) -> Result<Response, ApiError> {
    let base = base(&api, &req);
    answer(
        &req,
        scim_json(
            StatusCode::OK,
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "documentationUri": "https://github.com/portal-core/portal-core/blob/main/docs/scim.md",
                "patch": { "supported": true },
                "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
                "filter": { "supported": true, "maxResults": MAX_RESULTS },
                "changePassword": { "supported": false },
                "sort": { "supported": false },
                "etag": { "supported": true },
                "authenticationSchemes": [{
                    "type": "oauthbearertoken",
                    "name": "API key",
                    "description": "An API key of the org with the scope `scim provision`, as `Authorization: Bearer`",
                    "primary": true,
                }],
                "meta": {
                    "resourceType": "ServiceProviderConfig",
                    "location": format!("{base}/ServiceProviderConfig"),
                },
            }),
        ),
    )
}

/// The resource types this server serves, as `ResourceType` resources.
fn resource_types(base: &str) -> Vec<Value> {
    [("User", "/Users", USER_SCHEMA), ("Group", "/Groups", GROUP_SCHEMA)]
        .into_iter()
        .map(|(name, endpoint, schema)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": name,
                "name": name,
                "endpoint": endpoint,
                "description": format!("{name}s of the org, provisioned by its directory"),
                "schema": schema,
                "schemaExtensions": [],
                "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}") },
            })
        })
        .collect()
}

/// A ListResponse of every item of `items` (discovery answers the whole collection).
fn full_list(items: Vec<Value>) -> Result<Response, ApiError> {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

/// The one item of `items` whose `id` is the path's `id`, else `404` (SCIM's error schema).
fn one_of(req: &Request, items: Vec<Value>, what: &str) -> Result<Response, ApiError> {
    let id = req.param("id")?;
    match items.into_iter().find(|item| item["id"] == id) {
        Some(item) => scim_json(StatusCode::OK, &item),
        None => Err(ApiError::new(ErrorCode::RouteNotFound, format!("no {what} `{id}`"))),
    }
}

pub(super) async fn scim_resource_types(api: Api, req: Request) -> Result<Response, ApiError> {
    let base = base(&api, &req);
    answer(&req, full_list(resource_types(&base)))
}

pub(super) async fn scim_resource_type(api: Api, req: Request) -> Result<Response, ApiError> {
    let base = base(&api, &req);
    answer(&req, one_of(&req, resource_types(&base), "resource type"))
}

/// One attribute of a schema: `readWrite`, `default` returned, not multi-valued.
fn attribute(name: &str, kind: &str, required: bool, case_exact: bool, uniqueness: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": name,
        "required": required,
        "caseExact": case_exact,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": uniqueness,
    })
}

/// The schemas of the resources this server serves: the attributes it keeps.
fn schemas(base: &str) -> Vec<Value> {
    let text = |name: &str| attribute(name, "string", false, false, "none");
    let mut name = text("name");
    name["type"] = Value::from("complex");
    name["subAttributes"] = json!([text("formatted"), text("givenName"), text("familyName")]);
    let mut emails = text("emails");
    // A portal user is found or made by its email address: a user needs one (the
    // `userName` may be it, but a client is told to send `emails`).
    emails["required"] = Value::from(true);
    emails["type"] = Value::from("complex");
    emails["multiValued"] = Value::from(true);
    emails["subAttributes"] = json!([
        attribute("value", "string", true, false, "none"),
        text("type"),
        attribute("primary", "boolean", false, false, "none")
    ]);
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A member of the org, provisioned by its directory",
        "attributes": [
            attribute("userName", "string", true, false, "server"),
            attribute("externalId", "string", false, true, "server"),
            name,
            text("displayName"),
            emails,
            attribute("active", "boolean", false, false, "none"),
        ],
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}") },
    });
    let mut member_value = attribute("value", "string", false, true, "none");
    member_value["mutability"] = Value::from("immutable");
    let mut member_ref = attribute("$ref", "reference", false, true, "none");
    member_ref["mutability"] = Value::from("immutable");
    member_ref["referenceTypes"] = json!(["User"]);
    let mut member_type = attribute("type", "string", false, false, "none");
    member_type["mutability"] = Value::from("immutable");
    member_type["canonicalValues"] = json!(["User"]);
    let mut members = text("members");
    members["type"] = Value::from("complex");
    members["multiValued"] = Value::from(true);
    members["subAttributes"] = json!([member_value, member_ref, member_type]);
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "A group of the org's directory; the org's owner maps it to roles",
        "attributes": [
            attribute("displayName", "string", true, false, "server"),
            attribute("externalId", "string", false, true, "server"),
            members,
        ],
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}") },
    });
    vec![user, group]
}

pub(super) async fn scim_schemas(api: Api, req: Request) -> Result<Response, ApiError> {
    let base = base(&api, &req);
    answer(&req, full_list(schemas(&base)))
}

pub(super) async fn scim_schema(api: Api, req: Request) -> Result<Response, ApiError> {
    let base = base(&api, &req);
    answer(&req, one_of(&req, schemas(&base), "schema"))
}

/// Any other resource under `/scim/v2`: `404` in SCIM's error schema (RFC 7644 §3.12),
/// as a SCIM client expects of an endpoint the server does not have; `POST /.search`
/// (searching every resource type at once, RFC 7644 §3.4.3) is `501 Not Implemented`.
pub(super) async fn scim_unknown(_api: Api, req: Request) -> Result<Response, ApiError> {
    if req.method == http::Method::POST && req.param("resource").is_ok_and(|r| r == ".search") {
        let body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": "501",
            "detail": "searching with POST /.search is not supported: GET each resource type with `filter`",
        });
        return scim_json(StatusCode::NOT_IMPLEMENTED, &body);
    }
    answer(
        &req,
        Err(ApiError::new(ErrorCode::RouteNotFound, "no such SCIM endpoint")),
    )
}

/// `POST /scim/v2/{resource}`: `/.search` is `501`, anything else `404` ([`scim_unknown`]).
pub(super) async fn scim_search(api: Api, req: Request) -> Result<Response, ApiError> {
    scim_unknown(api, req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn errors_carry_the_scim_type_rfc_7644_names() {
        let filter = ApiError::from(Filter::parse("userName zz \"a\"").unwrap_err());
        assert_eq!(scim_type(&filter), Some("invalidFilter"));
        let taken = ApiError::new(ErrorCode::ScimUniqueness, "taken");
        assert_eq!(scim_type(&taken), Some("uniqueness"));
        let stale = ApiError::new(ErrorCode::VersionConflict, "stale");
        assert_eq!(
            error_response(
                &stale,
                RequestId::generate(&portal_core::ids::RandomIds::default(), time::OffsetDateTime::now_utc())
            )
            .status,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(scim_type(&ApiError::new(ErrorCode::AccessDenied, "no")), None);
    }
}
