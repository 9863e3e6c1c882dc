//! API versions, Stripe-style: dated versions ([`VERSIONS`]), a `Portal-Version` request
//! header that picks one, each org pinned to the version current when it was created
//! (kept by an [`ApiVersionStore`]), and every change between two versions written once as
//! a [`VersionChange`]: a transform of request bodies up to the newer version, of response
//! bodies down to the older one, and of the OpenAPI document down to the older one.
//!
//! Handlers speak only the newest version ([`CURRENT`]). [`run`] wraps every route of the
//! table: it resolves the request's version (the header; else the path org's pin; else
//! [`CURRENT`]), lifts the request body through the changes from that version up to
//! [`CURRENT`] (oldest first), runs the route, brings a successful JSON answer back down
//! through the same changes (newest first), and echoes the version in `Portal-Version`.
//! An unknown version is `400 request.unknown_version`. Errors (problem+json) have one
//! shape in every version and carry no `Portal-Version`, so an error never tells a caller
//! which version another org is pinned to.
//!
//! To add a version: append its date to [`VERSIONS`] (it becomes [`CURRENT`], and orgs
//! created from then on are pinned to it), change the handlers and DTOs to the new shape,
//! and push one [`VersionChange`] to [`CHANGES`] whose functions turn the new shape back
//! into the previous one (responses, document) and the previous request shape into the
//! new one. `docs/http.md` describes each version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use portal_core::ErrorCode;
use portal_core::ids::OrgId;
use portal_core::store::StoreError;
use portal_core::tenancy::{ApiVersionName, ApiVersionStore};
use serde_json::Value;

use crate::api::Api;
use crate::error::ApiError;
use crate::routes::{Body, Request, Response, Route};

/// The request header that names a version, and the response header that echoes it.
pub const PORTAL_VERSION_HEADER: HeaderName = HeaderName::from_static("portal-version");

/// The supported versions, oldest first. The last one is [`CURRENT`].
pub const VERSIONS: &[&str] = &["2026-06-01", "2026-12-01"];

/// The oldest supported version: the one an org without a pin (created before pins
/// existed) answers in.
pub const BASELINE: &str = VERSIONS[0];

/// The newest version: what handlers speak, and what a new org is pinned to.
pub const CURRENT: &str = VERSIONS[VERSIONS.len() - 1];

/// One of [`VERSIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion(usize);

impl ApiVersion {
    /// The version named `name`, if it is supported.
    pub fn named(name: &str) -> Option<Self> {
        VERSIONS.iter().position(|v| *v == name).map(Self)
    }

    /// [`CURRENT`].
    pub const fn current() -> Self {
        Self(VERSIONS.len() - 1)
    }

    /// [`BASELINE`].
    pub const fn baseline() -> Self {
        Self(0)
    }

    /// Its date, `YYYY-MM-DD`.
    pub fn name(self) -> &'static str {
        VERSIONS[self.0]
    }

    /// Every supported version, oldest first.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..VERSIONS.len()).map(Self)
    }

    /// The name as a stored pin.
    ///
    /// # Errors
    ///
    /// None in practice: every name in [`VERSIONS`] is a date (a test holds them to it).
    pub fn pin(self) -> Result<ApiVersionName, ApiError> {
        Ok(ApiVersionName::new(self.name())?)
    }

    /// The header value naming it.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.name())
    }
}

/// Parses a `Portal-Version` value.
///
/// # Errors
///
/// `400 request.unknown_version`, naming the supported versions, for any other value.
pub fn parse(value: &[u8]) -> Result<ApiVersion, ApiError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(ApiVersion::named)
        .ok_or_else(unknown_version)
}

fn unknown_version() -> ApiError {
    ApiError::new(
        ErrorCode::UnknownApiVersion,
        format!(
            "`Portal-Version` names no supported version; use one of {}",
            VERSIONS.join(", ")
        ),
    )
}

/// One change between a version and the one before it, as transforms of JSON.
pub struct VersionChange {
    /// The version that introduced it.
    pub version: &'static str,
    /// What changed, for `docs/http.md`.
    pub summary: &'static str,
    /// The operations (`operationId`) whose bodies it changes.
    pub operations: &'static [&'static str],
    /// Turns a request body of the previous version into this version's (`None`: request
    /// bodies did not change). Called with the operation id.
    pub request: Option<fn(&str, &mut Value)>,
    /// Turns a successful response body of this version into the previous version's.
    pub response: fn(&str, &mut Value),
    /// Turns this version's OpenAPI document into the previous version's.
    pub document: fn(&mut Value),
}

/// Every change, oldest first; each names the version that introduced it.
pub static CHANGES: &[VersionChange] = &[VersionChange {
    version: "2026-12-01",
    summary: "The members listing embeds each member's user as `user: {id, display_name, email}` \
              (it was the id, with `display_name` and `email` beside it) and calls the membership's \
              creation time `joined_at` (it was `created_at`).",
    operations: &["list_members"],
    request: None,
    response: members_embed_their_user_down,
    document: members_embed_their_user_document_down,
}];

/// 2026-12-01 → 2026-06-01 for `list_members`: each item's `user` object back to its id,
/// with `display_name` and `email` beside it, and `joined_at` back to `created_at`.
fn members_embed_their_user_down(_operation: &str, body: &mut Value) {
    let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) else {
        return;
    };
    for item in items {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        if let Some(Value::Object(mut user)) = item.remove("user") {
            if let Some(id) = user.remove("id") {
                item.insert("user".to_owned(), id);
            }
            for field in ["display_name", "email"] {
                if let Some(value) = user.remove(field) {
                    item.insert(field.to_owned(), value);
                }
            }
        }
        if let Some(joined) = item.remove("joined_at") {
            item.insert("created_at".to_owned(), joined);
        }
    }
}

/// The document's side of [`members_embed_their_user_down`]: the listing's items are
/// `MemberView`s again, and the new schemas go.
fn members_embed_their_user_document_down(doc: &mut Value) {
    if let Some(items) = doc.pointer_mut("/components/schemas/MemberList/properties/items/items") {
        *items = serde_json::json!({ "$ref": "#/components/schemas/MemberView" });
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.remove("MemberEntry");
        schemas.remove("MemberUser");
    }
}

/// The changes newer than `version` that touch `operation`, oldest first.
fn changes_after(version: ApiVersion, operation: &str) -> impl DoubleEndedIterator<Item = &'static VersionChange> {
    CHANGES.iter().filter(move |change| {
        ApiVersion::named(change.version).is_some_and(|v| v > version) && change.operations.contains(&operation)
    })
}

/// Lifts a request body of `version` to [`CURRENT`] (oldest change first).
pub fn upgrade_request(version: ApiVersion, operation: &str, body: &mut Value) {
    for change in changes_after(version, operation) {
        if let Some(request) = change.request {
            request(operation, body);
        }
    }
}

/// Brings a response body of [`CURRENT`] down to `version` (newest change first).
pub fn downgrade_response(version: ApiVersion, operation: &str, body: &mut Value) {
    for change in changes_after(version, operation).rev() {
        (change.response)(operation, body);
    }
}

/// The OpenAPI document of `version`: the current one brought down through every newer
/// change, with `info.version` the version's date.
pub fn document(version: ApiVersion) -> Value {
    let mut doc: Value = serde_json::from_str(&crate::openapi::openapi_json()).unwrap_or_default();
    for change in CHANGES.iter().rev() {
        if ApiVersion::named(change.version).is_some_and(|v| v > version) {
            (change.document)(&mut doc);
        }
    }
    if let Some(info) = doc.get_mut("info").and_then(Value::as_object_mut) {
        info.insert("version".to_owned(), Value::from(version.name()));
    }
    // The `Portal-Version` parameter of each operation names this version only.
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            for parameter in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if parameter["name"] == "Portal-Version"
                    && let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut)
                {
                    schema.insert("enum".to_owned(), serde_json::json!([version.name()]));
                }
            }
        }
    }
    doc
}

/// [`document`] as pretty JSON with a trailing newline: the content of
/// `docs/openapi/<version>.json`.
pub fn document_json(version: ApiVersion) -> String {
    let mut text = serde_json::to_string_pretty(&document(version)).unwrap_or_default();
    text.push('\n');
    text
}

/// How long a pin read from the store is reused by this process: an upgrade made through
/// another server on the same database shows here within this time (at once on the server
/// that made it).
pub const PIN_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most orgs whose pins are cached; past it the cache starts over.
const PIN_CACHE_ORGS: usize = 10_000;

/// Orgs' pins, read through an [`ApiVersionStore`] and kept for [`PIN_CACHE_TTL`].
#[derive(Clone)]
pub struct Pins {
    store: Arc<dyn ApiVersionStore>,
    cache: Arc<Mutex<HashMap<OrgId, (ApiVersion, Instant)>>>,
}

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pins").finish_non_exhaustive()
    }
}

impl Pins {
    /// Pins kept in `store`.
    pub fn new(store: Arc<dyn ApiVersionStore>) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn ApiVersionStore {
        &*self.store
    }

    /// The version `org` is pinned to: [`BASELINE`] for an org without a pin (and for an
    /// unknown org), [`CURRENT`] for a pin this server does not know (a newer server's).
    ///
    /// # Errors
    ///
    /// `storage.*` when the store fails.
    pub async fn of(&self, org: OrgId) -> Result<ApiVersion, StoreError> {
        let now = Instant::now();
        if let Some((version, at)) = self.lock().get(&org).copied()
            && now.duration_since(at) < PIN_CACHE_TTL
        {
            return Ok(version);
        }
        let version = match self.store.api_version(org).await? {
            Some(name) => ApiVersion::named(name.as_str()).unwrap_or(ApiVersion::current()),
            None => ApiVersion::baseline(),
        };
        self.remember(org, version);
        Ok(version)
    }

    /// Records that `org` is now pinned to `version` (after this server changed it).
    pub fn remember(&self, org: OrgId, version: ApiVersion) {
        let mut cache = self.lock();
        if cache.len() >= PIN_CACHE_ORGS {
            cache.clear();
        }
        cache.insert(org, (version, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, (ApiVersion, Instant)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `route` on `request` in the request's version (see the module's docs).
///
/// # Errors
///
/// `400 request.unknown_version`; `storage.*` when the org's pin cannot be read; the
/// route's own errors.
pub async fn run(route: Route, api: Api, mut request: Request) -> Result<Response, ApiError> {
    let version = match request.headers.get(&PORTAL_VERSION_HEADER) {
        Some(value) => parse(value.as_bytes())?,
        None => match (api.pins(), org_of(&request)) {
            (Some(pins), Some(org)) => pins.of(org).await?,
            _ => ApiVersion::current(),
        },
    };
    let operation = route.operation_id;
    if version != ApiVersion::current()
        && !request.body.is_empty()
        && changes_after(version, operation).any(|c| c.request.is_some())
        && let Ok(mut body) = serde_json::from_slice::<Value>(&request.body)
    {
        upgrade_request(version, operation, &mut body);
        request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    }
    let mut response = route.call_unversioned(api, request).await?;
    if version != ApiVersion::current()
        && response.status.is_success()
        && changes_after(version, operation).next().is_some()
        && response
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes() == crate::routes::JSON.as_bytes())
        && let Body::Bytes(bytes) = &response.body
        && let Ok(mut body) = serde_json::from_slice::<Value>(bytes)
    {
        downgrade_response(version, operation, &mut body);
        let bytes = serde_json::to_vec(&body)
            .map_err(|err| ApiError::new(ErrorCode::Internal, format!("the response did not serialize: {err}")))?;
        response.body = Body::Bytes(Bytes::from(bytes));
    }
    response.headers.insert(PORTAL_VERSION_HEADER, version.header_value());
    Ok(response)
}

/// The org of the request's path (`{org_id}`), when it names a well-formed one.
fn org_of(request: &Request) -> Option<OrgId> {
    let (_, value) = request.params.iter().find(|(name, _)| name == "org_id")?;
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dates_in_order_and_changes_name_them() {
        for name in VERSIONS {
            assert!(ApiVersionName::new(name).is_ok(), "{name}");
        }
        assert!(VERSIONS.windows(2).all(|w| w[0] < w[1]), "oldest first");
        for change in CHANGES {
            let version = ApiVersion::named(change.version).expect("a change names a supported version");
            assert!(version > ApiVersion::baseline(), "the baseline has no change before it");
        }
    }

    #[test]
    fn unknown_versions_are_refused_with_a_stable_code() {
        for value in [&b"2026-06-02"[..], b"", b"latest", b"2026-12-01 ", b"\xff"] {
            let err = parse(value).unwrap_err();
            assert_eq!(err.code(), ErrorCode::UnknownApiVersion);
            assert_eq!(err.status(), 400);
        }
        assert_eq!(parse(b"2026-06-01").unwrap(), ApiVersion::baseline());
        assert_eq!(parse(b"2026-12-01").unwrap(), ApiVersion::current());
    }

    #[test]
    fn the_members_listing_comes_down_to_the_old_shape() {
        let new = serde_json::json!({"items": [{
            "org": "org_x", "user": {"id": "usr_y", "display_name": "Ada", "email": "ada@example.com"},
            "roles": ["owner"], "joined_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"
        }], "next": null});
        let mut old = new.clone();
        downgrade_response(ApiVersion::baseline(), "list_members", &mut old);
        assert_eq!(
            old,
            serde_json::json!({"items": [{
                "org": "org_x", "user": "usr_y", "display_name": "Ada", "email": "ada@example.com",
                "roles": ["owner"], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"
            }], "next": null})
        );
        let mut same = new.clone();
        downgrade_response(ApiVersion::current(), "list_members", &mut same);
        assert_eq!(same, new, "the current version is the handlers' own");
        let mut other = new.clone();
        downgrade_response(ApiVersion::baseline(), "get_org", &mut other);
        assert_eq!(other, new, "a change touches only its operations");
    }

    #[test]
    fn each_versions_document_lists_its_own_member_shape() {
        let old = document(ApiVersion::baseline());
        let new = document(ApiVersion::current());
        assert_eq!(old["info"]["version"], BASELINE);
        assert_eq!(new["info"]["version"], CURRENT);
        assert_eq!(
            old.pointer("/components/schemas/MemberList/properties/items/items/$ref"),
            Some(&Value::from("#/components/schemas/MemberView"))
        );
        assert_eq!(
            new.pointer("/components/schemas/MemberList/properties/items/items/$ref"),
            Some(&Value::from("#/components/schemas/MemberEntry"))
        );
        assert!(old.pointer("/components/schemas/MemberEntry").is_none());
        assert_eq!(
            crate::routes::operations_in(&old),
            crate::routes::operations_in(&new),
            "the same operations in both"
        );
    }
}
